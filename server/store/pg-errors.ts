// The errors of the PostgreSQL store that other layers act on (the HTTP layer answers 503 for StoreUnavailableError,
// and so for StoreBusyError, a kind of it).

/** Opening failed in a way a person must fix (the URL, credentials, the server, the schema): one line says what. */
export class PgStoreOpenError extends Error {
  override readonly name = 'PgStoreOpenError';
}

/** The database cannot be reached now (connection refused or timed out, the server shutting down): worth trying again shortly. */
export class StoreUnavailableError extends Error {
  override readonly name: string = 'StoreUnavailableError';
}

/** Every connection of the pool stayed in use while a caller waited for one: the server is up but this node is saturated; worth trying again shortly. */
export class StoreBusyError extends StoreUnavailableError {
  override readonly name = 'StoreBusyError';
}
