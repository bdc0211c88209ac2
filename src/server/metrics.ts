// Prometheus metrics, one registry per app so tests can run several apps in one process.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { ErrorCode } from './chat/protocol';

export interface Metrics {
  readonly registry: Registry;
  readonly connections: Gauge;
  readonly messagesReceived: Counter;
  readonly messagesDelivered: Counter;
  readonly errors: Counter<'code'>;
  readonly redisConnected: Gauge;
  readonly deliverySeconds: Histogram;
  error(code: ErrorCode): void;
}

export function createMetrics(): Metrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'chatter_' });

  const errors = new Counter({
    name: 'chatter_errors_total',
    help: 'Error frames sent to clients, by code',
    labelNames: ['code'] as const,
    registers: [registry],
  });
  return {
    registry,
    connections: new Gauge({ name: 'chatter_connections', help: 'Open WebSocket connections', registers: [registry] }),
    messagesReceived: new Counter({
      name: 'chatter_messages_received_total',
      help: 'Messages accepted and stored from local sockets (repeats of a clientId not counted)',
      registers: [registry],
    }),
    messagesDelivered: new Counter({
      name: 'chatter_messages_delivered_total',
      help: 'Message frames written to local sockets',
      registers: [registry],
    }),
    errors,
    redisConnected: new Gauge({
      name: 'chatter_redis_connected',
      help: '1 while connected to Redis; always 0 in embedded mode',
      registers: [registry],
    }),
    deliverySeconds: new Histogram({
      name: 'chatter_delivery_seconds',
      help: 'Time from storing a message to writing it to the local sockets of its room',
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers: [registry],
    }),
    error(code) {
      errors.inc({ code });
    },
  };
}
