import type { Knex } from 'knex';

/**
 * `entitlements.seats` leaves the plans: it was accepted, stored and put in licenses, but nothing
 * ever enforced it. The activation limit the service enforces is `entitlements.limits.instances`,
 * and it is NOT set from `seats` here: a plan keeps meaning what it meant (no limit that was not
 * enforced starts being enforced). Each plan changed gets an audit row (`plan.seats_removed`, actor
 * `system`, the old value in its details), so an operator who meant an instance limit can see which
 * plans had one and set `limits.instances`.
 *
 * `down` puts `seats` back from those audit rows (the latest one of each plan), on plans that still
 * exist and have no `seats` again, and writes a `plan.seats_restored` row for each; the audit rows
 * themselves stay (the log is append-only).
 */
export async function up(knex: Knex): Promise<void> {
  // An UPDATE's RETURNING sees the new row: the self-join reads the value being removed.
  await knex.raw(`
    with changed as (
      update plans p
         set entitlements = p.entitlements - 'seats', updated_at = now()
        from plans old
       where old.id = p.id and (old.entitlements -> 'seats') is not null
   returning p.id, p.code, old.entitlements -> 'seats' as seats
    )
    insert into audit_log (actor, actor_id, action, outcome, target_type, target_id, details)
    select 'system', null, 'plan.seats_removed', 'success', 'plan', id::text,
           jsonb_build_object(
             'code', code,
             'seats', seats,
             'reason', 'entitlements.seats was never enforced; the instance limit is entitlements.limits.instances, which was not changed'
           )
      from changed
     order by code`);
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw(`
    with removed as (
      select distinct on (target_id) target_id, details -> 'seats' as seats
        from audit_log
       where action = 'plan.seats_removed' and actor = 'system'
       order by target_id, id desc
    ),
    restored as (
      update plans p
         set entitlements = p.entitlements || jsonb_build_object('seats', r.seats), updated_at = now()
        from removed r
       where p.id::text = r.target_id and (p.entitlements -> 'seats') is null
   returning p.id, p.code, r.seats
    )
    insert into audit_log (actor, actor_id, action, outcome, target_type, target_id, details)
    select 'system', null, 'plan.seats_restored', 'success', 'plan', id::text, jsonb_build_object('code', code, 'seats', seats)
      from restored
     order by code`);
}
