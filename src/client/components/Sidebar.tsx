// Rooms: the ones this tab is in (with unread counts), joining or creating one by name, and
// the busiest rooms on the server to discover.
import { useEffect, useState } from 'preact/hooks';
import type { User } from '../../server/chat/protocol';
import { ApiError, listRooms, startSession, type RoomListing } from '../lib/api';
import type { ChatClient, ChatState } from '../lib/chat';

const ROOM_LIST_REFRESH_MS = 20_000;

interface Props {
  client: ChatClient;
  state: ChatState;
  onNavigate: () => void;
  onRename: (user: User) => void;
  onSignOut: () => void;
}

export function Sidebar({ client, state, onNavigate, onRename, onSignOut }: Props) {
  const [draft, setDraft] = useState('');
  const [invalid, setInvalid] = useState(false);
  const discover = useRoomListing();
  const others = discover.filter((room) => !state.rooms.includes(room.name)).slice(0, 20);

  function join(event: Event) {
    event.preventDefault();
    if (client.openRoom(draft)) {
      setDraft('');
      setInvalid(false);
      onNavigate();
    } else {
      setInvalid(true);
    }
  }

  return (
    <nav id="sidebar" class="sidebar" aria-label="Rooms">
      <form class="join-form" onSubmit={join}>
        <label for="join-room">Join or create a room</label>
        <div class="inline-field">
          <input
            id="join-room"
            placeholder="room-name"
            autoComplete="off"
            autoCapitalize="none"
            spellcheck={false}
            maxLength={33}
            value={draft}
            aria-invalid={invalid || undefined}
            aria-describedby="join-room-hint"
            onInput={(e) => setDraft(e.currentTarget.value)}
          />
          <button type="submit">Join</button>
        </div>
        <p id="join-room-hint" class={invalid ? 'form-error' : 'hint'}>
          Lowercase letters, digits, - and _, up to 32.
        </p>
      </form>

      <h2>Your rooms</h2>
      <ul class="room-list">
        {state.rooms.map((name) => {
          const room = state.roomStates[name];
          const unread = room?.unread ?? 0;
          return (
            <li key={name} class={name === state.active ? 'active' : ''}>
              <button
                type="button"
                class="room-link"
                aria-current={name === state.active ? 'page' : undefined}
                onClick={() => {
                  client.showRoom(name);
                  onNavigate();
                }}
              >
                <span class="room-name">#{name}</span>
                {unread > 0 && (
                  <span class="badge" aria-label={`${unread} unread`}>
                    {unread > 99 ? '99+' : unread}
                  </span>
                )}
              </button>
              <button type="button" class="leave" aria-label={`Leave #${name}`} title="Leave" onClick={() => client.leaveRoom(name)}>
                ×
              </button>
            </li>
          );
        })}
      </ul>

      {others.length > 0 && (
        <>
          <h2>Active rooms</h2>
          <ul class="room-list discover">
            {others.map((room) => (
              <li key={room.name}>
                <button
                  type="button"
                  class="room-link"
                  onClick={() => {
                    client.openRoom(room.name);
                    onNavigate();
                  }}
                >
                  <span class="room-name">#{room.name}</span>
                  <span class="online">{room.online} online</span>
                </button>
              </li>
            ))}
          </ul>
        </>
      )}

      <Account me={state.me} onRename={onRename} onSignOut={onSignOut} />
    </nav>
  );
}

function Account({ me, onRename, onSignOut }: { me: User; onRename: (user: User) => void; onSignOut: () => void }) {
  const [editing, setEditing] = useState(false);
  const [name, setName] = useState(me.name);
  const [error, setError] = useState('');

  async function rename(event: Event) {
    event.preventDefault();
    try {
      onRename(await startSession(name));
    } catch (err) {
      setError(err instanceof ApiError && err.code === 'invalid_name' ? 'Pick 1 to 32 visible characters.' : 'Could not rename. Try again.');
    }
  }

  if (editing) {
    return (
      <form class="account" onSubmit={rename}>
        <label for="rename">Your name</label>
        <div class="inline-field">
          <input id="rename" value={name} maxLength={64} autoFocus onInput={(e) => setName(e.currentTarget.value)} />
          <button type="submit">Save</button>
        </div>
        {error && <p class="form-error" role="alert">{error}</p>}
        <button type="button" class="link-button" onClick={() => setEditing(false)}>
          Cancel
        </button>
      </form>
    );
  }
  return (
    <div class="account">
      <span>
        Signed in as <strong>{me.name}</strong>
      </span>
      <span class="account-actions">
        <button type="button" class="link-button" onClick={() => setEditing(true)}>
          Change name
        </button>
        <button type="button" class="link-button" onClick={onSignOut}>
          Sign out
        </button>
      </span>
    </div>
  );
}

function useRoomListing(): RoomListing[] {
  const [rooms, setRooms] = useState<RoomListing[]>([]);
  useEffect(() => {
    let live = true;
    const refresh = () =>
      listRooms().then(
        (listing) => live && setRooms(listing),
        () => {},
      );
    void refresh();
    const timer = setInterval(refresh, ROOM_LIST_REFRESH_MS);
    return () => {
      live = false;
      clearInterval(timer);
    };
  }, []);
  return rooms;
}
