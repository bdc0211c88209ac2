// The first screen: choose the name others will see.
import { useState } from 'preact/hooks';
import type { User } from '../../server/chat/protocol';
import { ApiError, startSession } from '../lib/api';

export function NamePicker({ problem, onReady }: { problem?: string; onReady: (user: User) => void }) {
  const [name, setName] = useState('');
  const [error, setError] = useState(problem ?? '');
  const [busy, setBusy] = useState(false);

  async function submit(event: Event) {
    event.preventDefault();
    setBusy(true);
    setError('');
    try {
      onReady(await startSession(name));
    } catch (err) {
      setError(err instanceof ApiError && err.code === 'invalid_name' ? 'Pick a name of 1 to 32 visible characters.' : 'Could not sign in. Try again.');
      setBusy(false);
    }
  }

  return (
    <main class="welcome">
      <form class="welcome-card" onSubmit={submit}>
        <h1>Chatter</h1>
        <p>Pick a name to start chatting. It is remembered on this device.</p>
        <label for="name">Your name</label>
        <input
          id="name"
          name="name"
          autoComplete="nickname"
          maxLength={64}
          required
          autoFocus
          value={name}
          aria-invalid={error ? true : undefined}
          aria-describedby={error ? 'name-error' : undefined}
          onInput={(e) => setName(e.currentTarget.value)}
        />
        {error && (
          <p id="name-error" class="form-error" role="alert">
            {error}
          </p>
        )}
        <button type="submit" disabled={busy || name.trim() === ''}>
          {busy ? 'Joining…' : 'Start chatting'}
        </button>
      </form>
    </main>
  );
}
