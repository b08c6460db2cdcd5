// A list read page by page, each page reduced to what the caller keeps before the next is asked
// for: the gateway's first list and the reaper's passes at thousands of grants never hold every
// object at once (as objects they take kilobytes each; what is kept, a few hundred bytes), and no
// single answer is megabytes of JSON to parse in one go. The pages are one consistent snapshot, so
// a watch goes on from the list's version.

/** Objects per page: a few hundred kilobytes of JSON at a time. */
export const LIST_PAGE_SIZE = 250;

/** A list answer: client-node's (`_continue`) or the API server's JSON (`continue`). */
export interface ListPage<T> {
  items: T[];
  metadata?: { resourceVersion?: string; _continue?: string; continue?: string };
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
    next = list.metadata?._continue || list.metadata?.continue || undefined;
  } while (next);
  return { kept, resourceVersion };
}
