// The HTTP API the page uses: its session and the public room list.
import type { User } from '../../server/chat/protocol';

export interface RoomListing {
  name: string;
  online: number;
  lastMessageAt: number | null;
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

async function request<T>(method: string, path: string, body?: unknown): Promise<T> {
  const response = await fetch(path, {
    method,
    credentials: 'same-origin',
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (response.status === 204) return undefined as T;
  const data = (await response.json().catch(() => ({}))) as { error?: { code: string; message: string } };
  if (!response.ok) {
    throw new ApiError(response.status, data.error?.code ?? 'error', data.error?.message ?? `HTTP ${response.status}`);
  }
  return data as T;
}

/** The signed-in user, or null when there is no valid session cookie. */
export async function currentUser(): Promise<User | null> {
  try {
    return (await request<{ user: User }>('GET', '/api/session')).user;
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) return null;
    throw err;
  }
}

export async function startSession(name: string): Promise<User> {
  return (await request<{ user: User }>('POST', '/api/session', { name })).user;
}

export async function endSession(): Promise<void> {
  await request('DELETE', '/api/session');
}

export async function listRooms(): Promise<RoomListing[]> {
  return (await request<{ rooms: RoomListing[] }>('GET', '/api/rooms')).rooms;
}
