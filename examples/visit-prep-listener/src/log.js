// One line per message on stderr: time, level, message, then key=value details. stdout carries
// the readiness line only.

const LEVELS = { debug: 10, info: 20, warn: 30, error: 40 };
const threshold = LEVELS[(process.env.LOG_LEVEL || 'info').toLowerCase()] ?? LEVELS.info;

function fmt(v) {
  if (v instanceof Error) return JSON.stringify(`${v.name}: ${v.message}`);
  if (typeof v === 'string') return /^[\w./:@+-]+$/.test(v) ? v : JSON.stringify(v);
  return JSON.stringify(v);
}

function write(level, msg, details) {
  if (LEVELS[level] < threshold) return;
  const time = new Date().toISOString().slice(11, 23);
  const extra = details
    ? Object.entries(details)
        .filter(([, v]) => v !== undefined)
        .map(([k, v]) => ` ${k}=${fmt(v)}`)
        .join('')
    : '';
  process.stderr.write(`${time} ${level.toUpperCase().padEnd(5)} visit-prep-listener: ${msg}${extra}\n`);
}

export const log = {
  debug: (msg, d) => write('debug', msg, d),
  info: (msg, d) => write('info', msg, d),
  warn: (msg, d) => write('warn', msg, d),
  error: (msg, d) => write('error', msg, d),
};
