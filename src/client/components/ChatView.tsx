// The signed-in page: rooms on the side, the open room in the middle.
import { useEffect, useMemo, useState } from 'preact/hooks';
import type { User } from '../../server/chat/protocol';
import { ChatClient } from '../lib/chat';
import { socketUrl } from '../lib/socket';
import { useChatState } from '../lib/useChat';
import { ConnectionStatus } from './ConnectionStatus';
import { NoticeBar } from './NoticeBar';
import { RoomView } from './RoomView';
import { Sidebar } from './Sidebar';

interface Props {
  user: User;
  onRename: (user: User) => void;
  onSignOut: (expired: boolean) => void;
}

export function ChatView({ user, onRename, onSignOut }: Props) {
  const client = useMemo(() => new ChatClient(user, socketUrl(location)), [user]);
  const state = useChatState(client);
  const [menuOpen, setMenuOpen] = useState(false);

  useEffect(() => {
    client.start();
    return () => client.stop();
  }, [client]);

  useEffect(() => {
    if (state.signedOut) onSignOut(true);
  }, [state.signedOut]);

  // The tab title carries the unread count, so it shows in a background tab.
  const unread = Object.values(state.roomStates).reduce((sum, room) => sum + room.unread, 0);
  useEffect(() => {
    document.title = unread > 0 ? `(${unread}) Chatter` : 'Chatter';
  }, [unread]);

  useEffect(() => {
    const onVisible = () => {
      if (document.visibilityState === 'visible' && state.active) client.showRoom(state.active);
    };
    document.addEventListener('visibilitychange', onVisible);
    return () => document.removeEventListener('visibilitychange', onVisible);
  }, [client, state.active]);

  const room = state.active ? state.roomStates[state.active] : undefined;

  return (
    <div class={`chat ${menuOpen ? 'menu-open' : ''}`}>
      <header class="topbar">
        <button
          type="button"
          class="menu-button"
          aria-expanded={menuOpen}
          aria-controls="sidebar"
          onClick={() => setMenuOpen(!menuOpen)}
        >
          <span aria-hidden="true">☰</span>
          <span class="visually-hidden">Rooms</span>
          {unread > 0 && <span class="badge">{unread}</span>}
        </button>
        <h1 class="brand">Chatter</h1>
        <ConnectionStatus status={state.status} retryAt={state.retryAt} onRetry={() => client.reconnectNow()} />
      </header>
      <Sidebar
        client={client}
        state={state}
        onNavigate={() => setMenuOpen(false)}
        onRename={onRename}
        onSignOut={() => onSignOut(false)}
      />
      {room ? (
        <RoomView key={room.name} client={client} room={room} me={state.me} online={state.status === 'online'} />
      ) : (
        <main class="room empty-room">
          <p>Join a room to start chatting.</p>
        </main>
      )}
      <NoticeBar notice={state.notice} onDismiss={() => client.dismissNotice()} />
    </div>
  );
}
