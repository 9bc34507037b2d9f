/** The service kit: what every promptmesh service is built from. */
export * from './app';
export * from './config';
export * from './errors';
export * from './json-input';
export * from './lifecycle';
export * from './logger';
export * from './metrics';
export * from './redis';
export * from './request-target';
export * from './service';
export * from './tracing';
export * from './validation';
export * from './rolling-stats';
export * from './gcra-leases';
