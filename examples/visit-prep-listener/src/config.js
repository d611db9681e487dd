// Settings from the environment (crashcart's SUT contract, see the project README) and the
// variant switch. Nothing here talks to the network.

const env = process.env;

function required(name) {
  const v = env[name];
  if (!v) throw new Error(`missing environment variable ${name}`);
  return v;
}

function int(name, fallback) {
  const v = env[name];
  if (v == null || v === '') return fallback;
  const n = Number.parseInt(v, 10);
  if (!Number.isFinite(n)) throw new Error(`${name} must be an integer, got ${JSON.stringify(v)}`);
  return n;
}

export const VARIANTS = [
  'correct',
  // On a reconnect, subscribes again with replay id -1 (new events only): every change event
  // written while the listener was disconnected is never delivered to it.
  'loses-events-on-reconnect',
];

export function loadSettings() {
  const variant = env.LISTENER_VARIANT || 'correct';
  if (!VARIANTS.includes(variant)) {
    throw new Error(`unknown LISTENER_VARIANT ${variant} (known: ${VARIANTS.join(', ')})`);
  }
  return {
    variant,
    channel: env.LISTENER_CHANNEL || '/data/EventChangeEvent',
    // Visits prepared at once (the model serves a few requests at a time).
    concurrency: int('LISTENER_CONCURRENCY', 4),
    seed: int('CRASHCART_SEED', 0),
    salesforce: {
      loginUrl: required('SALESFORCE_LOGIN_URL'),
      instanceUrl: env.SALESFORCE_INSTANCE_URL || undefined, // the token answer's instance_url wins
      clientId: required('SALESFORCE_CLIENT_ID'),
      clientSecret: required('SALESFORCE_CLIENT_SECRET'),
      username: required('SALESFORCE_USERNAME'),
      password: required('SALESFORCE_PASSWORD'),
      version: env.SALESFORCE_API_VERSION || '59.0',
      callTimeoutMs: 3000, // per attempt; jsforce's own default is 30 minutes
      loginTimeoutMs: 5000,
      maxAttempts: 4,
    },
    llm: {
      baseURL: required('OPENAI_BASE_URL'),
      apiKey: env.OPENAI_API_KEY || 'none',
      model: env.LLM_MODEL || 'llama3.1:8b',
      callTimeoutMs: 10000, // per attempt, the whole answer
      maxAttempts: 3,
      maxTokens: 120,
    },
    streaming: {
      // Seconds faye waits before resending a failed Bayeux request (faye's default is 5).
      retrySeconds: 1,
      // Backoff (ms) between rebuilding the streaming client after it gave up (session
      // invalid, subscription refused).
      rebuildBackoffMs: [250, 5000],
    },
  };
}
