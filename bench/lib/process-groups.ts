/**
 * Process groups the bench started (detached children: Postern local mode, Haraka). If the bench is
 * interrupted while a system is still starting, its handle does not exist yet: this registry lets the
 * runner's cleanup signal exactly those groups, by id, and nothing else.
 */
export const startedGroups = new Set<number>();

/** SIGKILLs every group still registered (last-resort cleanup). */
export function killStartedGroups(): void {
  for (const pgid of startedGroups) {
    try {
      process.kill(-pgid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  startedGroups.clear();
}
