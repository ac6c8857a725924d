{#- Fails with each row dated after run_date: a mart must never look past the as-of date of its build. -#}
{% test as_of_run_date(model, column_name) %}

    select {{ column_name }}
    from {{ model }}
    where {{ column_name }} > {{ run_date_literal() }}

{% endtest %}
