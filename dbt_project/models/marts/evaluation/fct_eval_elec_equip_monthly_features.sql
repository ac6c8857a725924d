-- Training and scoring features of eval_elec_equip_monthly: one row per series and month end through
-- run_date.
-- Written once for the three evaluation marts in macros/evaluation_marts.sql (evaluation_period_features).
{{ evaluation_period_features(
    ref('stg_evaluation__elec_equip_monthly'),
    date_column='month_end_date',
    target='orders_index',
    period='month',
    lags=[1, 2, 12],
    rolling_windows=[3, 12]
) }}
