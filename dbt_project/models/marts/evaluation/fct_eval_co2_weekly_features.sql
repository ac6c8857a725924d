-- Training and scoring features of eval_co2_weekly: one row per series and week end through run_date.
-- Written once for the three evaluation marts in macros/evaluation_marts.sql (evaluation_period_features).
{{ evaluation_period_features(
    ref('stg_evaluation__co2_weekly'),
    date_column='week_end_date',
    target='co2_ppm',
    period='week',
    lags=[1, 2, 52],
    rolling_windows=[4, 52]
) }}
