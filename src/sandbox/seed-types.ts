/**
 * The shape of seed people shared by all four sandboxes: one generator (seed.ts) creates them,
 * each sandbox turns them into its own native state.
 */
export type SeedPlatform = 'salesforce' | 'hubspot' | 'mailchimp' | 'sendgrid';

export interface SeedPresence {
  /** One entry per record in this platform: duplicates and case variants of the address. */
  emails: string[];
  /** Opted out of all email here, and when. */
  optedOut: boolean;
  optedOutAt: string | null;
  /** Explicitly subscribed here (with evidence), and when; null = no evidence. */
  subscribedAt: string | null;
  /** Per canonical purpose: the state this platform holds (if it can express purposes). */
  purposes: Record<string, 'granted' | 'denied' | 'unknown'>;
  hardBounced: boolean;
  complained: boolean;
  /** The person asked this platform to erase them (Individual.ShouldForget, privacy deletion). */
  erasureRequested: boolean;
  /** Last modification time of the record(s). */
  updatedAt: string;
}

export interface SeedPerson {
  index: number;
  email: string;
  firstName: string;
  lastName: string;
  phone: string | null;
  presence: Partial<Record<SeedPlatform, SeedPresence>>;
}
