// Errors the resilience layer raises itself, and the HTTP status each maps to.

export class DependencyUnavailableError extends Error {
  constructor(dependency, reason, cause) {
    super(`${dependency} unavailable: ${reason}`);
    this.name = 'DependencyUnavailableError';
    this.dependency = dependency;
    this.reason = reason;
    this.cause = cause;
    this.httpStatus = 503;
  }
}

export class BreakerOpenError extends DependencyUnavailableError {
  constructor(dependency) {
    super(dependency, 'circuit open');
    this.name = 'BreakerOpenError';
  }
}

export class QuotaPausedError extends DependencyUnavailableError {
  constructor() {
    super('salesforce', 'API quota exhausted, pausing');
    this.name = 'QuotaPausedError';
  }
}

export class DeadlineExceededError extends Error {
  constructor(what) {
    super(`deadline exceeded: ${what}`);
    this.name = 'DeadlineExceededError';
    this.httpStatus = 504;
  }
}

export class AttemptTimeoutError extends Error {
  constructor(what, ms) {
    super(`${what} timed out after ${ms} ms`);
    this.name = 'AttemptTimeoutError';
  }
}

export class ConflictError extends Error {
  constructor(message) {
    super(message);
    this.name = 'ConflictError';
    this.httpStatus = 409;
  }
}

export class BadRequestError extends Error {
  constructor(message) {
    super(message);
    this.name = 'BadRequestError';
    this.httpStatus = 400;
  }
}
