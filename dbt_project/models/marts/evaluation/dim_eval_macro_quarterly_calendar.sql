-- Calendar of eval_macro_quarterly: one row per quarter end from the first quarter of history through
-- run_date + horizon_days. Written once for the three evaluation marts in macros/evaluation_marts.sql.
{{ evaluation_period_calendar(
    ref('stg_evaluation__macro_quarterly'),
    date_column='quarter_end_date',
    period='quarter'
) }}
