-- The fiscal calendar must run from the first history day through run_date + horizon_days (no gaps), so
-- every forecast date has its month-end, quarter-end and holiday flags.
with

calendar as (

    select
        min(calendar_date) as first_date,
        max(calendar_date) as last_date,
        count(*) as n_days
    from {{ ref('dim_fiscal_calendar') }}

),

history as (

    select min(revenue_date) as first_date
    from {{ ref('fct_revenue_features') }}

)

select
    calendar.first_date,
    calendar.last_date,
    calendar.n_days
from calendar
cross join history
where
    calendar.last_date is null
    or calendar.last_date
    != cast({{ dbt.dateadd('day', var('horizon_days', 90), run_date_literal()) }} as date)
    or calendar.first_date != history.first_date
    or calendar.n_days != {{ dbt.datediff('calendar.first_date', 'calendar.last_date', 'day') }} + 1
