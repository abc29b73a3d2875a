"""A producer endpoint for the outage tests: a view that enqueues, as any app's would."""

from django.http import HttpRequest, JsonResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt

from workers import enqueue


@csrf_exempt
def enqueue_add(request: HttpRequest) -> JsonResponse:
    job = enqueue("tests.jobfuncs.add", 1, 2)
    return JsonResponse({"job_id": job.id}, status=202)


urlpatterns = [path("enqueue/", enqueue_add), path("", __import__("django.urls").urls.include("jobsite.urls"))]
