import type { Knex } from 'knex';

/**
 * A refused all-or-nothing usage write carries its conflicting events in the error's DETAIL (read
 * by decodeRefusal in src/modules/usage/write-answer.ts), not at the end of its message. The message
 * keeps its text, JSON included, so an instance of the previous release still running during a
 * rolling deploy reads it as before; the current code reads the DETAIL only.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.raw(`
    create or replace function usage_refuse_write(p_events text) returns boolean language plpgsql volatile as $fn$
    begin
      raise exception using errcode = 'BL409', message = 'conflicting events: ' || p_events, detail = p_events;
    end
    $fn$`);
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw(`
    create or replace function usage_refuse_write(p_events text) returns boolean language plpgsql volatile as $fn$
    begin
      raise exception using errcode = 'BL409', message = 'conflicting events: ' || p_events;
    end
    $fn$`);
}
