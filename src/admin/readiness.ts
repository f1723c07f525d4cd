// Readiness tasks (ports-and-modes.md §4): ready when nothing is pending.
export class Readiness {
  private readonly pendingTasks = new Set<string>();

  /** Registers a pending task; returns the function that completes it. */
  register(name: string): () => void {
    this.pendingTasks.add(name);
    return () => this.pendingTasks.delete(name);
  }

  /** Marks a task pending again (e.g. the ZDS connection dropped). */
  setPending(name: string): void {
    this.pendingTasks.add(name);
  }

  complete(name: string): void {
    this.pendingTasks.delete(name);
  }

  pending(): string[] {
    return [...this.pendingTasks].sort();
  }

  isReady(): boolean {
    return this.pendingTasks.size === 0;
  }
}
