-- Training and scoring features of eval_macro_quarterly: one row per series and quarter end through run_date.
-- Written once for the three evaluation marts in macros/evaluation_marts.sql (evaluation_period_features).
{{ evaluation_period_features(
    ref('stg_evaluation__macro_quarterly'),
    date_column='quarter_end_date',
    target='value',
    period='quarter',
    lags=[1, 2, 4],
    rolling_windows=[4, 8]
) }}
