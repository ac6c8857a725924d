-- Daily revenue per series (business unit x region): a complete day grid from the series' first
-- posting through run_date, zero-filled. Days without postings are real zero-revenue days for a
-- ledger (weekends of B2B units), unlike missing rows in a point-of-sale feed. Credit notes net off.
with

ledger as (

    select * from {{ ref('stg_finance__ledger_entries') }}

),

business_units as (

    select * from {{ ref('stg_finance__business_units') }}

),

series as (

    select
        business_unit,
        region,
        min(posting_date) as first_posting_date
    from ledger
    group by business_unit, region

),

days as (

    {{ day_spine("(select min(posting_date) from ledger)", run_date_literal()) }}

),

grid as (

    select
        series.business_unit,
        series.region,
        days.date_day as revenue_date
    from series
    inner join days
        on series.first_posting_date <= days.date_day

),

postings as (

    select
        business_unit,
        region,
        posting_date,
        -- to cents via decimal (round(double, n) does not exist on Postgres)
        cast(sum(amount) as decimal(18, 2)) as revenue,
        count(*) as n_postings,
        cast(sum(case when amount < 0 then amount else 0 end) as decimal(18, 2)) as credit_note_amount
    from ledger
    group by business_unit, region, posting_date

),

joined as (

    select
        grid.business_unit || '-' || grid.region as series_id,
        grid.business_unit,
        grid.region,
        business_units.segment,
        grid.revenue_date,
        cast(coalesce(postings.revenue, 0) as double precision) as revenue,
        cast(coalesce(postings.n_postings, 0) as integer) as n_postings,
        cast(coalesce(postings.credit_note_amount, 0) as double precision) as credit_note_amount
    from grid
    left join postings
        on
            grid.business_unit = postings.business_unit
            and grid.region = postings.region
            and grid.revenue_date = postings.posting_date
    left join business_units
        on grid.business_unit = business_units.business_unit

)

select * from joined
