// The page: ask for a name when there is no session, then chat.
import { useEffect, useState } from 'preact/hooks';
import type { User } from '../server/chat/protocol';
import { ChatView } from './components/ChatView';
import { NamePicker } from './components/NamePicker';
import { currentUser, endSession } from './lib/api';

type Session = { state: 'loading' } | { state: 'anonymous'; problem?: string } | { state: 'signed-in'; user: User };

export function App() {
  const [session, setSession] = useState<Session>({ state: 'loading' });

  useEffect(() => {
    currentUser().then(
      (user) => setSession(user ? { state: 'signed-in', user } : { state: 'anonymous' }),
      () => setSession({ state: 'anonymous', problem: 'The server could not be reached. Try again in a moment.' }),
    );
  }, []);

  if (session.state === 'loading') return <p class="splash" role="status">Loading Chatter…</p>;
  if (session.state === 'anonymous') {
    return <NamePicker problem={session.problem} onReady={(user) => setSession({ state: 'signed-in', user })} />;
  }
  return (
    <ChatView
      // A new user (another name) starts with a fresh client and socket.
      key={session.user.id + session.user.name}
      user={session.user}
      onRename={(user) => setSession({ state: 'signed-in', user })}
      onSignOut={async (expired) => {
        if (!expired) await endSession().catch(() => {});
        setSession({ state: 'anonymous', problem: expired ? 'Your session ended. Pick a name to continue.' : undefined });
      }}
    />
  );
}
