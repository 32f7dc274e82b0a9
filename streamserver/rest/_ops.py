"""How one resource definition serves both clients.

A resource method is written once, as a plain function that checks its arguments and
returns a :class:`~streamserver.rest._request.Request`. The descriptors here bind it to a
client: :class:`op` makes it a blocking method of a sync resource, :class:`aop` a coroutine
method of an async one, and :class:`pager` / :class:`apager` turn a list builder into an
iterator over every page. The signature (and so the type checking, the docs and the IDE
hints) is the builder's own, carried through by ``ParamSpec``.

Arguments are checked when the method is called, not when the coroutine is awaited, so a
bad value raises :class:`ValueError` at the call site even in async code.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from os import PathLike
from pathlib import Path
from typing import Any, Generic, ParamSpec, Protocol, Self, TypeVar, overload

from ._request import Request, next_page
from .models import Model, Page

P = ParamSpec("P")
T = TypeVar("T")
M = TypeVar("M", bound=Model)


class SyncExecutor(Protocol):
    """What a sync resource needs from its client."""

    def _execute(self, req: Request[T]) -> T: ...

    def _download(self, url: str, dest: Path, chunk_size: int) -> Path: ...


class AsyncExecutor(Protocol):
    """What an async resource needs from its client."""

    async def _execute(self, req: Request[T]) -> T: ...

    async def _download(self, url: str, dest: Path, chunk_size: int) -> Path: ...


class SyncResource:
    """Base of the resources of :class:`~streamserver.rest.PlivoClient`."""

    __slots__ = ("_client",)

    def __init__(self, client: SyncExecutor) -> None:
        self._client = client


class AsyncResource:
    """Base of the resources of :class:`~streamserver.rest.AsyncPlivoClient`."""

    __slots__ = ("_client",)

    def __init__(self, client: AsyncExecutor) -> None:
        self._client = client


class op(Generic[P, T]):
    """A blocking method built from a request builder."""

    def __init__(self, build: Callable[P, Request[T]]) -> None:
        self._build = build
        self.__doc__ = build.__doc__

    @overload
    def __get__(self, obj: None, owner: type[Any]) -> Self: ...
    @overload
    def __get__(self, obj: SyncResource, owner: type[Any]) -> Callable[P, T]: ...
    def __get__(self, obj: SyncResource | None, owner: type[Any]) -> Self | Callable[P, T]:
        if obj is None:
            return self
        build, client = self._build, obj._client

        @functools.wraps(build)
        def call(*args: P.args, **kwargs: P.kwargs) -> T:
            return client._execute(build(*args, **kwargs))

        return call


class aop(Generic[P, T]):
    """A coroutine method built from a request builder."""

    def __init__(self, build: Callable[P, Request[T]]) -> None:
        self._build = build
        self.__doc__ = build.__doc__

    @overload
    def __get__(self, obj: None, owner: type[Any]) -> Self: ...
    @overload
    def __get__(self, obj: AsyncResource, owner: type[Any]) -> Callable[P, Awaitable[T]]: ...
    def __get__(
        self, obj: AsyncResource | None, owner: type[Any]
    ) -> Self | Callable[P, Awaitable[T]]:
        if obj is None:
            return self
        build, client = self._build, obj._client

        @functools.wraps(build)
        def call(*args: P.args, **kwargs: P.kwargs) -> Awaitable[T]:
            # Build (and so validate) now; only the sending waits for the await.
            return client._execute(build(*args, **kwargs))

        return call


def _iterate(client: SyncExecutor, req: Request[Page[M]]) -> Iterator[M]:
    current: Request[Page[M]] | None = req
    while current is not None:
        page = client._execute(current)
        yield from page.objects
        current = next_page(current, page)


async def _aiterate(client: AsyncExecutor, req: Request[Page[M]]) -> AsyncIterator[M]:
    current: Request[Page[M]] | None = req
    while current is not None:
        page = await client._execute(current)
        for obj in page.objects:
            yield obj
        current = next_page(current, page)


class pager(Generic[P, M]):
    """``for obj in resource.iter(...)``: every object of every page, fetched lazily."""

    def __init__(self, build: Callable[P, Request[Page[M]]]) -> None:
        self._build = build
        self.__doc__ = build.__doc__

    @overload
    def __get__(self, obj: None, owner: type[Any]) -> Self: ...
    @overload
    def __get__(self, obj: SyncResource, owner: type[Any]) -> Callable[P, Iterator[M]]: ...
    def __get__(
        self, obj: SyncResource | None, owner: type[Any]
    ) -> Self | Callable[P, Iterator[M]]:
        if obj is None:
            return self
        build, client = self._build, obj._client

        @functools.wraps(build)
        def call(*args: P.args, **kwargs: P.kwargs) -> Iterator[M]:
            return _iterate(client, build(*args, **kwargs))

        return call


class apager(Generic[P, M]):
    """``async for obj in resource.iter(...)``: every object of every page, fetched lazily."""

    def __init__(self, build: Callable[P, Request[Page[M]]]) -> None:
        self._build = build
        self.__doc__ = build.__doc__

    @overload
    def __get__(self, obj: None, owner: type[Any]) -> Self: ...
    @overload
    def __get__(self, obj: AsyncResource, owner: type[Any]) -> Callable[P, AsyncIterator[M]]: ...
    def __get__(
        self, obj: AsyncResource | None, owner: type[Any]
    ) -> Self | Callable[P, AsyncIterator[M]]:
        if obj is None:
            return self
        build, client = self._build, obj._client

        @functools.wraps(build)
        def call(*args: P.args, **kwargs: P.kwargs) -> AsyncIterator[M]:
            return _aiterate(client, build(*args, **kwargs))

        return call


def dest_path(dest: str | PathLike[str]) -> Path:
    """The target of a download, as an absolute path whose directory exists."""
    p = Path(dest)
    if p.is_dir():
        raise ValueError(f"dest must be a file path, got the directory {str(p)!r}")
    if not p.parent.is_dir():
        raise ValueError(f"dest's directory does not exist: {str(p.parent)!r}")
    return p
