import type { FastifyInstance, FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import { HEADERS, PATHS } from '../../contracts';
import type { PeerHttp } from './http-client';
import { ROUTE_SCOPES } from './route-scopes';

/** Replaces any client-sent actor header with the authenticated key's id. */
export function setActor(request: FastifyRequest): void {
  request.headers[HEADERS.actor] = request.apiKey?.id ?? 'anonymous';
}

// Response headers of a peer that are passed on to the client.
const PASSED_HEADERS = ['content-type', 'retry-after', 'location', 'etag', 'cache-control'];

/**
 * The id a session is stored under: with auth on, each API key has its own namespace
 * (`<key id>:<session id>`), so no key can read or extend another key's conversation.
 */
export function scopedSessionId(keyId: string | undefined, sessionId: string): string {
  return keyId ? `${keyId}:${sessionId}` : sessionId;
}

const SESSION_PATH = new RegExp(`^${PATHS.sessions}/([^/?]+)`);

/** Rewrites `/v1/sessions/{id}...` to the caller's namespace (see {@link scopedSessionId}). */
export function scopeSessionUrl(url: string, keyId: string | undefined): string {
  if (!keyId) return url;
  return url.replace(SESSION_PATH, (_m, id: string) => `${PATHS.sessions}/${encodeURIComponent(scopedSessionId(keyId, decodeURIComponent(id)))}`);
}

/**
 * Forwards the templates and sessions routes of {@link ROUTE_SCOPES} to the peers (mesh
 * layout), with the actor header set from the API key. The peer's status, body and a few headers are passed back.
 */
export function proxyRoutes(templates: PeerHttp, context: PeerHttp): FastifyPluginAsync {
  return async (app: FastifyInstance) => {
    const forward = (peer: PeerHttp) => async (request: FastifyRequest, reply: FastifyReply) => {
      setActor(request);
      const headers: Record<string, string> = { [HEADERS.actor]: request.headers[HEADERS.actor] as string };
      const hasBody = request.body !== undefined && request.method !== 'GET' && request.method !== 'HEAD' && request.method !== 'DELETE';
      const url = peer === context ? scopeSessionUrl(request.url, request.apiKey?.id) : request.url;
      const res = await peer.request(request.method as 'GET', url, { requestId: request.id, traceContext: request.traceContext }, {
        body: hasBody ? JSON.stringify(request.body) : undefined,
        headers,
      });
      reply.code(res.statusCode);
      for (const name of PASSED_HEADERS) {
        const v = res.headers[name];
        if (typeof v === 'string') reply.header(name, v);
      }
      return reply.send(res.body);
    };
    // The same route patterns the peers serve (not wildcards): the route that matches here is
    // the one that will run there, and its scope is the one checked here.
    for (const { method, url } of ROUTE_SCOPES) {
      const peer = url === PATHS.templates || url.startsWith(`${PATHS.templates}/`) ? templates : url.startsWith(`${PATHS.sessions}/`) ? context : undefined;
      if (peer) app.route({ method, url, handler: forward(peer) });
    }
  };
}
