"""The public results (结果公示) of a city's programs: which companies each program
awarded how much and when, once the award's public notice has ended. Public pages, for
anyone; a draft program, or one that does not publish its results, is a 404."""

from __future__ import annotations

from django.http import HttpResponse
from django.shortcuts import render

from portal.http import CityRequest, page_of
from vouchers import selectors


def results_index(request: CityRequest, city_slug: str) -> HttpResponse:
    """The city's programs with public results."""
    return render(
        request,
        "vouchers/results_index.html",
        {"city": request.city, "programs": selectors.program_results_list(city=request.city)},
    )


def program_results(request: CityRequest, city_slug: str, slug: str) -> HttpResponse:
    program = selectors.program_results_get(city=request.city, slug=slug)
    awards = selectors.award_result_list(program=program)
    totals = selectors.award_result_totals(program=program)
    return render(
        request,
        "vouchers/program_results.html",
        {
            "city": request.city,
            "program": program,
            "page": page_of(request, awards, count=totals["n"]),
            "totals": totals,
        },
    )
