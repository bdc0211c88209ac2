import { useEffect, useState } from 'preact/hooks';
import type { ChatClient, ChatState } from './chat';

/** Re-renders on every change of the client's state. */
export function useChatState(client: ChatClient): ChatState {
  const [state, setState] = useState(client.state);
  useEffect(() => {
    setState(client.state);
    return client.subscribe(() => setState(client.state));
  }, [client]);
  return state;
}
