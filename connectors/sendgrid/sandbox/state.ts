/** In-memory SendGrid suppression state. Addresses are keyed lowercased; times are unix seconds. */
export type ListType = 'bounces' | 'blocks' | 'spam_reports' | 'invalid_emails';
export const LIST_TYPES: readonly ListType[] = ['bounces', 'blocks', 'spam_reports', 'invalid_emails'];

export interface GroupConfig {
  id: number;
  name: string;
  description: string;
  is_default?: boolean;
  /** Canonical purpose seeded denials map to (default: the name, snake_cased). */
  purpose?: string;
}

export const DEFAULT_GROUPS: GroupConfig[] = [
  { id: 101, name: 'Newsletter', description: 'Our monthly newsletter', is_default: true, purpose: 'newsletter' },
  { id: 102, name: 'Product updates', description: 'News about the product', purpose: 'product_updates' },
  { id: 103, name: 'Events', description: 'Invitations to events and webinars', purpose: 'events' },
];

export interface Entry {
  email: string;
  created: number;
  reason?: string;
  status?: string;
  ip?: string;
}

/** One suppression list (insertion-ordered), with a cached newest-first view for paging. */
export class SuppressionList {
  private readonly map = new Map<string, Entry>();
  private version = 0;
  private sorted: { version: number; entries: Entry[] } | null = null;
  private window: { key: string; version: number; entries: Entry[] } | null = null;

  get size(): number {
    return this.map.size;
  }

  get(email: string): Entry | undefined {
    return this.map.get(email.toLowerCase());
  }

  has(email: string): boolean {
    return this.map.has(email.toLowerCase());
  }

  /** Adds (or refreshes) an entry; returns true when the address was not there before. */
  add(entry: Entry): boolean {
    const key = entry.email.toLowerCase();
    const isNew = !this.map.has(key);
    this.map.set(key, entry);
    this.version++;
    return isNew;
  }

  delete(email: string): boolean {
    const ok = this.map.delete(email.toLowerCase());
    if (ok) this.version++;
    return ok;
  }

  clear(): void {
    this.map.clear();
    this.version++;
  }

  all(): IterableIterator<Entry> {
    return this.map.values();
  }

  /** Entries with start <= created <= end, newest first (ties by address). Cached per window. */
  query(start: number | undefined, end: number | undefined): Entry[] {
    if (!this.sorted || this.sorted.version !== this.version) {
      const entries = [...this.map.values()].sort((a, b) => b.created - a.created || (a.email < b.email ? -1 : a.email > b.email ? 1 : 0));
      this.sorted = { version: this.version, entries };
    }
    if (start === undefined && end === undefined) return this.sorted.entries;
    const key = `${start ?? ''}|${end ?? ''}`;
    if (this.window && this.window.key === key && this.window.version === this.version) return this.window.entries;
    const entries = this.sorted.entries.filter((e) => (start === undefined || e.created >= start) && (end === undefined || e.created <= end));
    this.window = { key, version: this.version, entries };
    return entries;
  }
}

export interface Group extends Required<Omit<GroupConfig, 'purpose'>> {
  purpose: string;
  suppressions: SuppressionList;
}

export function purposeOf(g: GroupConfig): string {
  return g.purpose ?? g.name.trim().toLowerCase().replace(/[^a-z0-9]+/g, '_');
}

export class SendGridState {
  readonly global = new SuppressionList();
  readonly groups = new Map<number, Group>();
  readonly lists: Record<ListType, SuppressionList> = {
    bounces: new SuppressionList(),
    blocks: new SuppressionList(),
    spam_reports: new SuppressionList(),
    invalid_emails: new SuppressionList(),
  };

  constructor(groups: GroupConfig[]) {
    for (const g of groups) {
      this.groups.set(g.id, { id: g.id, name: g.name, description: g.description, is_default: g.is_default ?? false, purpose: purposeOf(g), suppressions: new SuppressionList() });
    }
  }

  clear(): void {
    this.global.clear();
    for (const g of this.groups.values()) g.suppressions.clear();
    for (const t of LIST_TYPES) this.lists[t].clear();
  }

  /** Everything the account knows about one address (for the control API and tests). */
  describe(email: string): Record<string, unknown> {
    return {
      email,
      globalUnsubscribe: this.global.get(email) ?? null,
      groups: [...this.groups.values()].filter((g) => g.suppressions.has(email)).map((g) => g.id),
      bounce: this.lists.bounces.get(email) ?? null,
      block: this.lists.blocks.get(email) ?? null,
      spamReport: this.lists.spam_reports.get(email) ?? null,
      invalid: this.lists.invalid_emails.get(email) ?? null,
    };
  }
}
