export default function Labels({ labels, skip = [] }: { labels: Record<string, string>; skip?: string[] }) {
  return (
    <span className="labels">
      {Object.keys(labels)
        .filter((k) => !skip.includes(k))
        .sort()
        .map((k) => (
          <span key={k} className="label-chip">
            {k}="{labels[k]}"
          </span>
        ))}
    </span>
  );
}
