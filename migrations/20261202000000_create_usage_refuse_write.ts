import type { Knex } from 'knex';

/**
 * All-or-nothing usage writes (batches) refuse a conflict inside the one write statement, so a batch
 * needs no transaction of its own (BEGIN and COMMIT cost more CPU than the write). SQL cannot raise an
 * error by itself: this function only raises what the statement decided (the rule stays in
 * WRITE_SQL, in usage-repository.ts), with SQLSTATE BL409 and the conflicting events as JSON.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.raw(`
    create function usage_refuse_write(p_events text) returns boolean language plpgsql volatile as $fn$
    begin
      raise exception using errcode = 'BL409', message = 'conflicting events: ' || p_events;
    end
    $fn$`);
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw('drop function usage_refuse_write(text)');
}
