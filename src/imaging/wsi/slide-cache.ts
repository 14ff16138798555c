import type { ObjectStore } from '../../core/ports.ts';
import { fromObjectStore } from './byte-source.ts';
import { openSlide, type Slide } from './slide.ts';

/**
 * Slides opened from the object store, kept by key, least recently used out: a worker scoring many
 * batches of a slide, or a viewer asking for many tiles, parses the slide's directories once and shares
 * its tile cache. A slide that fails to open is not kept, so a later request tries again.
 */
export function createSlideCache(objects: ObjectStore, keep: number) {
  const open = new Map<string, Promise<Slide>>();
  return {
    get(key: string, bytes: number): Promise<Slide> {
      let slide = open.get(key);
      if (slide) {
        open.delete(key);
        open.set(key, slide);
        return slide;
      }
      slide = openSlide(fromObjectStore(objects, key, bytes));
      slide.catch(() => open.delete(key));
      open.set(key, slide);
      while (open.size > keep) open.delete(open.keys().next().value as string);
      return slide;
    },
  };
}

export type SlideCache = ReturnType<typeof createSlideCache>;
