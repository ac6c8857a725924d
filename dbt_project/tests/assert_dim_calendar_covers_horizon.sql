-- The calendar must reach run_date + horizon_days so every forecast date has calendar features.
with

coverage as (

    select max(calendar_date) as last_date
    from {{ ref('dim_calendar') }}

)

select last_date
from coverage
where last_date is null
    or last_date < cast({{ dbt.dateadd('day', var('horizon_days', 90), run_date_literal()) }} as date)
