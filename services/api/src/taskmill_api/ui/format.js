// Times in the user's own zone, durations, numbers.

const dateTime = new Intl.DateTimeFormat(undefined, {
  year: "numeric", month: "short", day: "2-digit",
  hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23",
});
const timeOnly = new Intl.DateTimeFormat(undefined, {
  hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23",
});

/** The zone times are shown in (the browser's). */
export const zone = Intl.DateTimeFormat().resolvedOptions().timeZone;

/** An ISO time as the user reads it ("—" when there is none). */
export function when(iso) {
  return iso ? dateTime.format(new Date(iso)) : "—";
}

/** Now, hours to seconds. */
export function clock(date = new Date()) {
  return timeOnly.format(date);
}

/** Seconds as "850 ms", "12.3 s", "4 min 05 s", "2 h 03 min". */
export function duration(seconds) {
  if (seconds === null || seconds === undefined) return "—";
  if (seconds < 1) return `${Math.round(seconds * 1000)} ms`;
  if (seconds < 60) return `${seconds.toFixed(1)} s`;
  const s = Math.round(seconds);
  if (s < 3600) return `${Math.floor(s / 60)} min ${String(s % 60).padStart(2, "0")} s`;
  return `${Math.floor(s / 3600)} h ${String(Math.floor((s % 3600) / 60)).padStart(2, "0")} min`;
}

/** A share (0..1) as a percentage. */
export function percent(share) {
  return share === null || share === undefined ? "—" : `${(share * 100).toFixed(1)} %`;
}

/** Compact JSON of a value, cut to `max` characters. */
export function brief(value, max = 80) {
  const text = JSON.stringify(value);
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}
