// One room: who is here, the conversation, who is typing, and the composer.
import type { User } from '../../server/chat/protocol';
import type { ChatClient, RoomState } from '../lib/chat';
import { typingText } from '../lib/format';
import { Composer } from './Composer';
import { MessageList } from './MessageList';

interface Props {
  client: ChatClient;
  room: RoomState;
  me: User;
  online: boolean;
}

export function RoomView({ client, room, me, online }: Props) {
  const typing = typingText(room.typing.map((t) => t.user.name));
  return (
    <main class="room" aria-labelledby="room-title">
      <header class="room-header">
        <h2 id="room-title">#{room.name}</h2>
        <details class="people">
          <summary>
            {room.users.length} {room.users.length === 1 ? 'person' : 'people'} here
          </summary>
          <ul aria-label={`People in #${room.name}`}>
            {room.users.map((user) => (
              <li key={user.id}>
                {user.name}
                {user.id === me.id && <span class="you"> (you)</span>}
              </li>
            ))}
          </ul>
        </details>
      </header>
      <MessageList client={client} room={room} me={me} />
      <p class="typing" aria-live="polite">
        {typing}
      </p>
      <Composer
        room={room.name}
        online={online && room.joined}
        onSend={(text) => client.sendMessage(text)}
        onTyping={() => client.typing()}
      />
    </main>
  );
}
