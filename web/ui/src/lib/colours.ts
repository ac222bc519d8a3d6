// Series and service colours: a fixed palette, picked by a stable hash so a
// service keeps its colour across pages and reloads.
export const PALETTE = [
  '#7eb26d', '#eab839', '#6ed0e0', '#ef843c', '#e24d42', '#1f78c1', '#ba43a9', '#705da0',
  '#508642', '#cca300', '#447ebc', '#c15c17', '#890f02', '#0a437c', '#6d1f62', '#584477',
];

export function hashString(s: string): number {
  let h = 2166136261;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 16777619);
  }
  return h >>> 0;
}

export function colourFor(key: string): string {
  return PALETTE[hashString(key) % PALETTE.length];
}

export function colourAt(i: number): string {
  return PALETTE[i % PALETTE.length];
}
