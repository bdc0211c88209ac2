// One polite notice at a time (rate limits, refused joins), gone after a few seconds.
import { useEffect } from 'preact/hooks';
import type { Notice } from '../lib/chat';

const SHOWN_MS = 6000;

export function NoticeBar({ notice, onDismiss }: { notice: Notice | null; onDismiss: () => void }) {
  useEffect(() => {
    if (!notice) return;
    const timer = setTimeout(onDismiss, SHOWN_MS);
    return () => clearTimeout(timer);
  }, [notice?.id]);

  return (
    <div class="notice-area" role="status" aria-live="polite">
      {notice && (
        <div class="notice">
          <span>{notice.text}</span>
          <button type="button" class="link-button" onClick={onDismiss} aria-label="Dismiss notice">
            ×
          </button>
        </div>
      )}
    </div>
  );
}
