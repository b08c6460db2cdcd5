// A list read page by page, each page reduced to what the caller keeps before the next is asked
// for: the gateway's first list at thousands of grants never holds every object at once (as
// client-node's deserialized objects they take kilobytes each; what the table keeps, a few hundred
// bytes). The pages are one consistent snapshot, so the watch goes on from the list's version.
import type { V1ListMeta } from '@kubernetes/client-node';

/** Objects per page: a few hundred kilobytes of JSON at a time. */
export const LIST_PAGE_SIZE = 250;

export interface ListPage<T> {
  items: T[];
  metadata?: V1ListMeta;
}

export async function listReduced<T, R>(
  page: (options: { limit: number; _continue?: string }) => Promise<ListPage<T>>,
  keep: (item: T) => R | undefined,
  pageSize = LIST_PAGE_SIZE,
): Promise<{ kept: R[]; resourceVersion: string | undefined }> {
  const kept: R[] = [];
  let next: string | undefined;
  let resourceVersion: string | undefined;
  do {
    const list = await page({ limit: pageSize, ...(next ? { _continue: next } : {}) });
    for (const item of list.items) {
      const reduced = keep(item);
      if (reduced !== undefined) kept.push(reduced);
    }
    resourceVersion = list.metadata?.resourceVersion;
    next = list.metadata?._continue || undefined;
  } while (next);
  return { kept, resourceVersion };
}
