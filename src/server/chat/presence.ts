// Presence counts users, not sockets. This counts one process's sockets per user and room, so
// the store hears only of a user's first socket arriving and last socket going; the store then
// combines processes.

export class LocalPresence {
  private readonly sockets = new Map<string, Map<string, number>>();

  /** Returns true when this is the user's first socket in the room on this process. */
  add(room: string, userId: string): boolean {
    let users = this.sockets.get(room);
    if (!users) {
      users = new Map();
      this.sockets.set(room, users);
    }
    const count = users.get(userId) ?? 0;
    users.set(userId, count + 1);
    return count === 0;
  }

  /** Returns true when that was the user's last socket in the room on this process. */
  remove(room: string, userId: string): boolean {
    const users = this.sockets.get(room);
    const count = users?.get(userId);
    if (!users || count === undefined) return false;
    if (count > 1) {
      users.set(userId, count - 1);
      return false;
    }
    users.delete(userId);
    if (users.size === 0) this.sockets.delete(room);
    return true;
  }
}
