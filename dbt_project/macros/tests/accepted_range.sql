{#-
    Fails with each row whose value lies outside [min_value, max_value] (bounds optional, exclusive when
    inclusive=false). Nulls pass: combine with not_null where a value is required.
-#}
{% test accepted_range(model, column_name, min_value=none, max_value=none, inclusive=true) %}

    {%- set lower = '>=' if inclusive else '>' -%}
    {%- set upper = '<=' if inclusive else '<' %}

    select *
    from {{ model }}
    where {{ column_name }} is not null
        and not (
            1 = 1
            {%- if min_value is not none %}
            and {{ column_name }} {{ lower }} {{ min_value }}
            {%- endif %}
            {%- if max_value is not none %}
            and {{ column_name }} {{ upper }} {{ max_value }}
            {%- endif %}
        )

{% endtest %}
