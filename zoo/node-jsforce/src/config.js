// Settings from the environment (crashcart's SUT contract) and the variant switch.
//
// Every tunable of the resilience layer lives here so that the broken variants differ from
// the correct one in exactly one place each.

const env = process.env;

function required(name) {
  const v = env[name];
  if (!v) throw new Error(`missing environment variable ${name}`);
  return v;
}

export const VARIANTS = [
  'correct',
  'no-refresh', // logs in once at start-up and never again
  'no-backoff', // retries at once (Retry-After still honoured)
  'ignore-retry-after', // backs off on its own schedule, ignores Retry-After
  'no-compensation', // a failed booking leaves whatever Event it wrote
  'non-idempotent-create', // creates the Event with POST and retries that POST
  'blind-overwrite', // patient sync PATCHes without If-Match
  'no-breaker', // circuit breakers never open
  'no-timeout', // library defaults: no timeout worth the name
  'unbounded-retries', // retries retryable failures until the request's deadline
];

export const variant = env.ZOO_VARIANT || 'correct';
if (!VARIANTS.includes(variant)) {
  throw new Error(`unknown ZOO_VARIANT ${variant} (known: ${VARIANTS.join(', ')})`);
}
const is = (v) => variant === v;

export const config = {
  port: Number(env.PORT || 8080),
  variant,
  salesforce: {
    loginUrl: required('SALESFORCE_LOGIN_URL'),
    instanceUrl: required('SALESFORCE_INSTANCE_URL'),
    clientId: required('SALESFORCE_CLIENT_ID'),
    clientSecret: required('SALESFORCE_CLIENT_SECRET'),
    username: required('SALESFORCE_USERNAME'),
    password: required('SALESFORCE_PASSWORD'),
    version: env.SALESFORCE_API_VERSION || '59.0',
    // Per attempt. jsforce's own default is 30 minutes.
    callTimeoutMs: is('no-timeout') ? null : 1500,
    loginTimeoutMs: is('no-timeout') ? null : 3000,
    maxAttempts: is('unbounded-retries') ? Infinity : 4,
    relogin: !is('no-refresh'),
    // When the token endpoint refuses us, wait before asking again (doubling to the cap).
    loginPauseMs: [300, 2000],
    // Quota: pause all traffic this long after REQUEST_LIMIT_EXCEEDED, then probe one at a time.
    quotaPauseMs: 1000,
    quotaReserveRatio: 0.02, // Sforce-Limit-Info: stop when less than 2 % is left
  },
  llm: {
    baseURL: required('OPENAI_BASE_URL'),
    apiKey: env.OPENAI_API_KEY || 'none',
    model: env.LLM_MODEL || 'llama3.1:8b',
    callTimeoutMs: is('no-timeout') ? null : 2500,
    maxAttempts: is('unbounded-retries') ? Infinity : 3,
  },
  backoff: {
    baseMs: is('no-backoff') ? 0 : 100,
    capMs: is('no-backoff') ? 0 : 1600,
    honourRetryAfter: !is('ignore-retry-after'),
    retryAfterCapMs: 5000,
  },
  breaker: {
    enabled: !is('no-breaker'),
    failureThreshold: 5,
    openMs: 1000,
  },
  // End-to-end budgets of the HTTP operations (the workload waits 10-12 s).
  budgets: {
    bookingMs: is('no-timeout') ? null : 7000,
    bookingNoteMs: is('no-timeout') ? null : 3500,
    syncMs: is('no-timeout') ? null : 6000,
    summaryMs: is('no-timeout') ? null : 7000,
    summaryLlmMs: is('no-timeout') ? null : 4500,
  },
  booking: {
    compensate: !is('no-compensation'),
    idempotentEventWrite: !is('non-idempotent-create'),
  },
  sync: {
    conditional: !is('blind-overwrite'),
    maxConflicts: 3,
  },
};
