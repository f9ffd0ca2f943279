/** Workflow threads whose calls the watchdog covers now (0 without the preload). */
export function watchedThreads(): number;
/** Exit status of a worker stopped by the watchdog. */
export const STUCK_EXIT_CODE: number;
