// One error shape for the whole HTTP API: {"error":{"code","message"}}.
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';

export class HttpError extends Error {
  constructor(
    readonly statusCode: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'HttpError';
  }
}

export function errorBody(code: string, message: string) {
  return { error: { code, message } };
}

const CODE_BY_STATUS: Record<number, string> = {
  400: 'bad_request',
  401: 'unauthorized',
  403: 'forbidden',
  404: 'not_found',
  405: 'method_not_allowed',
  413: 'payload_too_large',
  415: 'unsupported_media_type',
  429: 'rate_limited',
};

/** Client mistakes are answered with their reason; server faults are logged and answered blandly. */
export function handleError(error: FastifyError | HttpError, request: FastifyRequest, reply: FastifyReply) {
  const status = error.statusCode && error.statusCode >= 400 ? error.statusCode : 500;
  if (status >= 500) {
    request.log.error({ err: error }, 'request failed');
    return reply.code(status).send(errorBody('internal', 'something went wrong on our side'));
  }
  const code = error instanceof HttpError ? error.code : (CODE_BY_STATUS[status] ?? 'bad_request');
  return reply.code(status).send(errorBody(code, error.message));
}

export function handleNotFound(_request: FastifyRequest, reply: FastifyReply) {
  return reply.code(404).send(errorBody('not_found', 'no such resource'));
}
