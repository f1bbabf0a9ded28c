"""A draft's documents after upload: removed or replaced while the company may still
change the application (issue #13 item 9). Uploading is `applications.document_add`."""

from __future__ import annotations

from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from django.utils.translation import gettext as _

from portal.audit import audit_record
from portal.errors import DomainError
from portal.models import User
from vouchers import workflow
from vouchers.models import Application, Document
from vouchers.services._steps import locked
from vouchers.services.applications import upload_checked


def _editable_document(application: Application, actor: User, document: Document) -> Document:
    """The document, locked, once the application (locked by the caller) is the actor's
    company's and still editable."""
    if workflow.MEMBER not in workflow.parties(application, actor):
        raise DomainError(_("Not found."), code="not_found")
    if application.state not in workflow.EDITABLE:
        raise DomainError(
            _("Documents can no longer be changed: the application is submitted."),
            code="conflict",
        )
    found = (
        Document.objects.select_for_update().filter(pk=document.pk, application=application).first()
    )
    if found is None:
        raise DomainError(_("Not found."), code="not_found")
    return found


def _delete_file_on_commit(document: Document) -> None:
    # The file goes only once the row's deletion is committed; a rollback keeps both.
    storage, name = document.file.storage, document.file.name
    if name:
        transaction.on_commit(lambda: storage.delete(name))


def document_remove(*, application: Application, actor: User, document: Document) -> None:
    with transaction.atomic():
        application = locked(application)
        document = _editable_document(application, actor, document)
        data = {
            "application": application.pk,
            "document": document.pk,
            "doc_type": document.doc_type,
            "name": document.original_name,
        }
        _delete_file_on_commit(document)
        document.delete()
        audit_record(
            action="document.remove",
            city=application.city,
            actor=actor,
            target=application,
            data=data,
        )


def document_replace(
    *, application: Application, actor: User, document: Document, upload: UploadedFile[bytes]
) -> Document:
    """A new file in the place of one uploaded before: the same type, the old file gone,
    in one step (the application never lacks the document in between)."""
    checked = upload_checked(upload)
    with transaction.atomic():
        application = locked(application)
        old = _editable_document(application, actor, document)
        new = Document.objects.create(
            application=application,
            doc_type=old.doc_type,
            **checked._asdict(),
            uploaded_by=actor,
        )
        data = {
            "application": application.pk,
            "doc_type": old.doc_type,
            "replaced": old.pk,
            "replaced_name": old.original_name,
            "content_type": checked.content_type,
            "size": checked.size,
        }
        _delete_file_on_commit(old)
        old.delete()
        audit_record(
            action="document.replace", city=application.city, actor=actor, target=new, data=data
        )
    return new
