// The content-box size of an element, kept current with a ResizeObserver.
import { useEffect, useRef, useState } from 'react';

export function useSize<T extends HTMLElement>(): [React.RefObject<T | null>, { width: number; height: number }] {
  const ref = useRef<T>(null);
  const [size, setSize] = useState({ width: 0, height: 0 });
  useEffect(() => {
    const el = ref.current;
    if (!el) return;
    const measure = () => {
      // The content box: clientWidth/Height include the padding.
      const cs = getComputedStyle(el);
      const px = (v: string) => parseFloat(v) || 0;
      const w = Math.max(0, Math.floor(el.clientWidth - px(cs.paddingLeft) - px(cs.paddingRight)));
      const h = Math.max(0, Math.floor(el.clientHeight - px(cs.paddingTop) - px(cs.paddingBottom)));
      setSize((s) => (s.width === w && s.height === h ? s : { width: w, height: h }));
    };
    measure();
    const ro = new ResizeObserver(measure);
    ro.observe(el);
    return () => ro.disconnect();
  }, []);
  return [ref, size];
}
