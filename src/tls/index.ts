export * from './acme.ts';
export * from './openssl.ts';
export * from './profiles.ts';
export * from './selfsigned.ts';
export * from './status.ts';
export * from './store.ts';
