// Tabs whose choice lives in the URL (?tab=…).
import { useLocation } from '../lib/url';

export function useTab(tabs: { id: string; label: string }[]): [string, React.ReactElement] {
  const [loc, setParams] = useLocation();
  const cur = loc.params.get('tab') ?? tabs[0].id;
  const el = (
    <div className="tabs" role="tablist">
      {tabs.map((t) => (
        <button key={t.id} role="tab" aria-selected={cur === t.id} className={cur === t.id ? 'active' : ''} onClick={() => setParams({ tab: t.id === tabs[0].id ? undefined : t.id })}>
          {t.label}
        </button>
      ))}
    </div>
  );
  return [cur, el];
}
