/** The schedule for pages and workers: its record kept in IndexedDB (idb-keyval), so a reload does not reset the clock. */
import { get, set } from 'idb-keyval';
import { createSchedule, type Schedule, type ScheduleOptions } from '../targets/schedule.ts';

export function browserSchedule(options: Omit<ScheduleOptions, 'store'>): Schedule {
  return createSchedule({ store: { get, set }, ...options });
}
