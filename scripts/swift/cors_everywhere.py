"""CORS headers on every answer to an allowed origin, for the test Swift.

Swift 2.30 adds CORS headers only to responses its proxy controllers make:
s3api's own answers (bucket listings, 404 NoSuchKey, 416 InvalidRange, every
403) carry none, so a browser sees "Failed to fetch" instead of a status and
cannot list a bucket at all. AWS S3, R2, B2 and MinIO send CORS headers on
those answers; this filter (first in the pipeline) makes the test store do the
same, as a reverse proxy in front of a production Swift would. Preflights stay
with s3api's cors_preflight_allow_origin.
"""


def filter_factory(global_conf, **local_conf):
    origins = [o.strip() for o in local_conf.get('allow_origin', '*').split(',') if o.strip()]
    expose = local_conf.get('expose_headers', 'etag, content-range, content-length, accept-ranges, last-modified, x-amz-request-id, date')

    def make(app):
        def middleware(env, start_response):
            origin = env.get('HTTP_ORIGIN')
            if not origin or env.get('REQUEST_METHOD') == 'OPTIONS' or ('*' not in origins and origin not in origins):
                return app(env, start_response)

            def cors_start_response(status, headers, exc_info=None):
                if not any(k.lower() == 'access-control-allow-origin' for k, _ in headers):
                    headers = list(headers) + [
                        ('Access-Control-Allow-Origin', origin),
                        ('Access-Control-Expose-Headers', expose),
                        ('Vary', 'Origin'),
                    ]
                return start_response(status, headers, exc_info)

            return app(env, cors_start_response)
        return middleware
    return make
