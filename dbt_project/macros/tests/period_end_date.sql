{#-
    Fails with each date that is not the last day of its period: period 'month' or 'quarter' (month or
    quarter end), or 'week' with week_end_isodow (ISO weekday of the week-ending day, 6 = Saturday). The
    platform keys non-daily periods by their last day, so any other date would shift targets by a period.
-#}
{% test period_end_date(model, column_name, period, week_end_isodow=none) %}

    select {{ column_name }}
    from {{ model }}
    where
        {{ column_name }} is not null
        {%- if period == 'week' %}
            and cast(extract(isodow from {{ column_name }}) as integer) != {{ week_end_isodow }}
        {%- else %}
            {%- set step = "interval '3 months'" if period == 'quarter' else "interval '1 month'" %}
            and {{ column_name }} != cast(
                date_trunc('{{ period }}', cast({{ column_name }} as timestamp)) + {{ step }} - interval '1 day'
                as date
            )
        {%- endif %}

{% endtest %}
