{#-
    Source freshness judged as of the run date (dbt var `run_date`), not as of the wall clock.

    Used as the `loaded_at_query` of every dated raw table (dbt renders loaded_at_query when the
    freshness check runs, with the source as `this`). dbt measures a source's age as
    `snapshotted_at - max_loaded_at`, with snapshotted_at = the warehouse's current_timestamp, and
    compares it with warn_after / error_after. This query returns

        max_loaded_at = current_timestamp - (run_date - newest business date <= run_date) days

    so the age dbt computes is exactly the newest row's age in whole days before the run date: a backfill
    of a past date with data up to that date is fresh, whatever today is. Rows after the run date are
    ignored (the models' as-of filter ignores them too). Without a run_date var (someone running
    `dbt source freshness` by hand) it judges as of today. No row up to the run date gives null, which
    dbt treats as infinitely old.

    The shift is in seconds (86400 per day), never calendar days, so a daylight-saving change in the
    session time zone cannot make the age off by an hour.
-#}
{% macro source_freshness_loaded_at(date_column) %}
    {%- set as_of = run_date_literal() if var('run_date', none) is not none else 'current_date' -%}
    {%- set column = 'cast(' ~ date_column ~ ' as date)' -%}
    select {{ dbt.dateadd('second', '-86400 * ' ~ dbt.datediff('max(' ~ column ~ ')', as_of, 'day'),
                          current_timestamp()) }}
    from {{ this }}
    where {{ column }} <= {{ as_of }}
{% endmacro %}
