-- Calendar of eval_co2_weekly: one row per week end from the first week of history through
-- run_date + horizon_days. Written once for the three evaluation marts in macros/evaluation_marts.sql.
{{ evaluation_period_calendar(
    ref('stg_evaluation__co2_weekly'),
    date_column='week_end_date',
    period='week'
) }}
