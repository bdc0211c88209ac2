// Always visible: whether messages are flowing, and when the next attempt is.
import { useEffect, useState } from 'preact/hooks';
import type { ConnectionStatus as Status } from '../lib/socket';

export function ConnectionStatus({ status, retryAt, onRetry }: { status: Status; retryAt: number | null; onRetry: () => void }) {
  const [now, setNow] = useState(Date.now());
  useEffect(() => {
    if (status !== 'offline') return;
    const timer = setInterval(() => setNow(Date.now()), 500);
    return () => clearInterval(timer);
  }, [status]);

  const seconds = retryAt ? Math.max(0, Math.ceil((retryAt - now) / 1000)) : 0;
  return (
    <div class={`connection ${status}`} role="status" aria-live="polite">
      <span class="dot" aria-hidden="true" />
      {status === 'online' && 'Connected'}
      {status === 'connecting' && 'Connecting…'}
      {status === 'offline' && (
        <>
          {seconds > 0 ? `Offline, retrying in ${seconds} s` : 'Offline, retrying…'}
          <button type="button" class="link-button" onClick={onRetry}>
            Retry now
          </button>
        </>
      )}
    </div>
  );
}
