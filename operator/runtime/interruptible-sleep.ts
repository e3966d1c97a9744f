/**
 * A sleep that `stop()` can cut short: loops that wait between retries (the informer's relist backoff, the
 * leader elector's retry period) must end promptly on shutdown instead of finishing their wait.
 */
export class InterruptibleSleep {
  #wake?: () => void;

  /** Resolves after `ms`, or at once when `wake()` is called meanwhile. */
  sleep(ms: number): Promise<void> {
    return new Promise((res) => {
      const t = setTimeout(res, ms);
      this.#wake = () => {
        clearTimeout(t);
        res();
      };
    });
  }

  wake(): void {
    this.#wake?.();
  }
}
