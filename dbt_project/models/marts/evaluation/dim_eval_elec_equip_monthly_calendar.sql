-- Calendar of eval_elec_equip_monthly: one row per month end from the first month of history through
-- run_date + horizon_days. Written once for the three evaluation marts in macros/evaluation_marts.sql.
{{ evaluation_period_calendar(
    ref('stg_evaluation__elec_equip_monthly'),
    date_column='month_end_date',
    period='month'
) }}
