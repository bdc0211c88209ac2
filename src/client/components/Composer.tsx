// Enter sends, Shift+Enter starts a new line. Messages written while offline wait as "sending".
import { useRef, useState } from 'preact/hooks';

interface Props {
  room: string;
  online: boolean;
  onSend: (text: string) => void;
  onTyping: () => void;
}

export function Composer({ room, online, onSend, onTyping }: Props) {
  const [text, setText] = useState('');
  const input = useRef<HTMLTextAreaElement>(null);

  function send() {
    if (text.trim() === '') return;
    onSend(text);
    setText('');
    input.current?.focus();
  }

  return (
    <form
      class="composer"
      onSubmit={(event) => {
        event.preventDefault();
        send();
      }}
    >
      <label for="composer-input" class="visually-hidden">
        Message #{room}
      </label>
      <textarea
        id="composer-input"
        ref={input}
        rows={1}
        placeholder={online ? `Message #${room}` : `Message #${room} (sent when reconnected)`}
        value={text}
        autoFocus
        onInput={(event) => {
          setText(event.currentTarget.value);
          onTyping();
        }}
        onKeyDown={(event) => {
          if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
            event.preventDefault();
            send();
          }
        }}
      />
      <button type="submit" disabled={text.trim() === ''}>
        Send
      </button>
    </form>
  );
}
