"""Pagination, so that no list reads more rows (or makes more queries) as an organization grows.

API lists: numbered pages of `PAGE_SIZE` (50) rows, `?page=2&page_size=200` at most, answered as
`{"count", "next", "previous", "results"}`; clients follow `next` until it is null.
Pages: `page_of()` (`?page=`) and `search()` (`?q=`, the search box of templates/_search.html).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import reduce
from operator import or_
from typing import TYPE_CHECKING, Any

from django.core.paginator import Page, Paginator
from django.db.models import Q, QuerySet
from django.http import HttpRequest
from rest_framework.pagination import PageNumberPagination
from rest_framework.response import Response

if TYPE_CHECKING:  # rest_framework.generics imports this module (DEFAULT_PAGINATION_CLASS)
    from rest_framework.generics import GenericAPIView

PER_PAGE = 50


class Pagination(PageNumberPagination):
    page_size_query_param = "page_size"
    max_page_size = 200


def paginated_response(view: GenericAPIView, rows: Iterable[Any], as_dict: Callable[[Any], dict]) -> Response:
    """One page of `rows` (a queryset: only that page is read), each shown by `as_dict`."""
    page = view.paginate_queryset(rows)
    return view.get_paginated_response([as_dict(row) for row in page])


def page_of(request: HttpRequest, rows: QuerySet, per_page: int = PER_PAGE) -> Page:
    """The `?page=` page of `rows` (the last one for a number past the end, the first for junk)."""
    return Paginator(rows, per_page).get_page(request.GET.get("page"))


def search(request: HttpRequest, rows: QuerySet, *fields: str) -> tuple[QuerySet, str]:
    """`rows` whose `fields` contain the search box's `?q=` (case-insensitive), and the text searched for."""
    text = request.GET.get("q", "").strip()[:100]
    if not text:
        return rows, ""
    return rows.filter(reduce(or_, (Q(**{f"{field}__icontains": text}) for field in fields))), text
